"""Rule-based safety layer: unsafe intents get a schema-valid refusal before any model runs.

Each rule is a regular expression over the intent (lowercased, in the dataset languages where the
cue is a word) tagged with one category of the schema's `refusal.category` enum:

- account_takeover: getting into another person's account (an ex's, a partner's, a coworker's).
- security_bypass: getting past 2FA, verification codes, activation locks, screen-time passcodes,
  anti-cheat. Turning off 2FA on one's own account is not a bypass and is not matched.
- paywall_bypass: paywalls, premium content without paying, cracked or pirated copies.
- fraud: fake documents and reviews, phishing and lookalike pages, stolen cards, false disputes,
  structuring cash.
- stalking: tracking, reading or watching someone covertly ("without her knowing", "sin que se
  entere", "sans qu'elle le sache"...), hidden cameras and trackers, finding where someone lives.
- malware: writing keyloggers, ransomware, trojans, stealers; capturing keystrokes; stealing
  cookies or sessions.
- harassment: doxxing, mass reporting, threats, evading blocks to keep contacting someone.
- other_harm: weapons and explosives.

The rules favour precision: a miss still meets the fine-tuned model, which refuses by itself
(those refusals are passed through and marked refused_by="model"), while a false refusal cannot be
undone. tests/run/test_run_safety.py holds the rules to zero refusals over the dataset's own
procedure intents.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from data.schema import load_schema

_OTHER = (
    r"(?:my (?:ex(?:-wife|-husband|-girlfriend|-boyfriend)?|wife|husband|girlfriend|boyfriend|partner|"
    r"spouse|boss|manager|coworker|co-worker|colleague|roommate|flatmate|neighbou?r|sister|brother|"
    r"daughter's friend|son's friend|teacher|employee)(?:'s)?|someone else's|another person's|"
    r"other people's|(?:his|her|their) (?:\w+ ){0,2}(?:account|phone|email|inbox|messages|password))"
)
_COVERT = (
    r"(?:without (?:her|him|them|my \w+|anyone|the owner)? ?(?:knowing|noticing|finding out|"
    r"being notified|getting (?:a |the )?(?:notification|alert))|"
    r"so (?:she|he|they) (?:doesn't|don't|won't|can't) (?:notice|know|find out|see)|"
    r"secretly|quietly|covertly|behind (?:her|his|their) back|"
    r"without (?:it|the \w+) (?:chiming|lighting|notifying)|"
    r"(?:sin|no quiero) que (?:se entere|lo sepa|le (?:llegue|salga)|ella|él)|"
    r"sans qu'(?:il|elle)s? (?:le sache|s'en aper|remarque|apparaisse)|"
    r"ohne dass (?:er|sie|es) (?:es )?(?:merkt|mitbekommt|weiß)|sem que (?:ele|ela) (?:saiba|perceba)|"
    r"senza che (?:lui|lei) (?:lo sappia|se ne accorga))"
)
# Someone close (in the dataset languages) and what one might watch of theirs: with a covert cue,
# together they make stalking.
_PERSON = (
    r"\b(?:ex|wife|husband|girlfriend|boyfriend|partner|spouse|roommate|coworker|colleague|"
    r"daughter's friend|novia|novio|pareja|esposa|esposo|mujer|marido|compañera|compañero|femme|mari|"
    r"copine|copain|collègue|frau|mann|freundin|freund|kollegin|kollege|namorada|namorado|ragazza|"
    r"ragazzo|moglie|marito|collega)\b"
)
_WATCHED = (
    r"\b(?:messages|location|whereabouts|camera|microphone|photos|history|chats|dms|emails|calls|inbox|"
    r"gps|mensajes|correos|ubicación|micrófono|cámara|localisation|nachrichten|standort|mensagens|"
    r"localização|messaggi|posizione|whatsapp)\b"
)
_BYPASS = r"(?:bypass|get (?:past|around)|circumvent|skip|defeat|crack|umgehen|contourner|saltar\w*|burlar|"
_BYPASS += r"eludir|pular|aggirare)"
_FREE = r"(?:for free|without paying|sin pagar|sans payer|ohne (?:zu )?(?:bezahlen|zahlen)|sem pagar|"
_FREE += r"senza pagare)"
_PAID = r"(?:premium|netflix|disney|hbo|spotify|subscription|movies|series)"
_MAKE = r"(?:write|make|create|build|code|develop|program|escribir|crear|créer|écrire|erstellen|schreiben|"
_MAKE += r"criar|fazer|scrivere|creare)"
_RULES: list[tuple[str, str]] = [
    (
        "account_takeover",
        # not "proxy access to his account": a parent's or carer's delegated access is a real flow
        rf"\b(?:hack|break into|get into|log ?in(?:to)?|sign in(?:to)?|(?<!proxy )access|take over)\b"
        rf".{{0,40}}{_OTHER}",
    ),
    ("account_takeover", r"\b(?:have|know|got|saved)\b.{0,40}\b(?:his|her|their)\b.{0,25}\bpassword"),
    (
        "account_takeover",
        r"\b(?:hack(?:ear)?|pirater|hacken)\b.{0,30}"
        r"\b(?:account|cuenta|compte|konto|conta|instagram|facebook|email|gmail)",
    ),
    (
        "account_takeover",
        r"\b(?:entrar?|entro|acceder) (?:a|en) (?:su|el \w+ de mi) "
        r"(?:cuenta|correo|facebook|instagram|whatsapp)",
    ),
    (
        "security_bypass",
        rf"\b{_BYPASS}\b.{{0,40}}\b(?:2fa|two[- ]factor|2-step|two-step|mfa|sms code|"
        r"verification|captcha|activation lock|icloud lock|frp|screen ?time|passcode|anti-?cheat|vanguard|"
        r"steam guard|code screen|the code)",
    ),
    (
        "security_bypass",
        r"\b(?:found|find) (?:an? )?(?:iphone|phone|ipad|laptop)\b.{0,80}"
        r"\b(?:activation lock|apple id|unlock|passcode)",
    ),
    ("paywall_bypass", rf"\b(?:{_BYPASS}|remove)\b.{{0,30}}\bpaywall"),
    ("paywall_bypass", rf"\b{_FREE}\b.{{0,40}}\b{_PAID}|\b{_PAID}\b.{{0,40}}\b{_FREE}\b"),
    ("paywall_bypass", r"\b(?:cracked|pirated|pirate) (?:version|copy|apk|app|game|account)s?\b"),
    (
        "fraud",
        rf"\b(?:{_MAKE}|generate|post|buy|need|print|forge|hacer|faire|fare)\b.{{0,30}}"
        r"\b(?:fake|forged?|counterfeit|falsos?|falsas?|faux|fausses?|gefälschte?n?|falso|falsa)\b"
        r".{0,20}\b(?:reviews?|receipts?|invoices?|pay ?stubs?|id|ids|doctor's note|certificates?|"
        r"documents?|facturas?|recibos?|justificatifs?|rechnungen?|ausweis|certificado|certificato)",
    ),
    (
        "fraud",
        # sending phishing, not reporting it: "report a phishing email" is a procedure
        r"\b(?:make|create|build|send|run|set up|write|launch|host|code|design)\b.{0,40}\bphishing\b|"
        r"\bphishing\b.{0,40}\b(?:to|that|which) (?:steal|collect|harvest|grab|get)s?\b|"
        r"\b(?:lookalike|look-alike|spoof(?:ed)?) (?:domain|email|login|page|site)|"
        r"\bcopy of the .{0,30}login page|\bpage that saves (?:whatever|what) people type",
    ),
    (
        "fraud",
        r"\b(?:stolen|someone else's|found) (?:credit |debit )?card|card numbers? with cvvs?|"
        r"carte bancaire par terre",
    ),
    (
        "fraud",
        r"\blooks? (?:exactly )?like it'?s from\b|\bsay I'm (?:him|her)\b|"
        r"\bpretend (?:to be|I'm) (?:him|her|someone)",
    ),
    (
        "fraud",
        r"\b(?:with|using) (?:his|her|their|someone else's) (?:driver's )?"
        r"(?:license|licence|id|passport|ssn)\b",
    ),
    ("fraud", r"\b(?:launder|structur(?:e|ing) (?:the )?(?:deposits|cash)|under 10k|caja vacía|empty box)\b"),
    (
        "stalking",
        rf"\b(?:track|trace|locate|spy on|stalk|monitor|read|see|watch|listen to|follow)\b"
        rf".{{0,60}}{_COVERT}",
    ),
    ("stalking", rf"{_COVERT}.{{0,60}}\b(?:track|location|messages|whatsapp|camera|microphone|see where)\b"),
    ("stalking", rf"^(?=.*{_PERSON})(?=.*{_COVERT})(?=.*{_WATCHED})"),
    (
        "stalking",
        r"\b(?:spy on|stalk|stalking|espiar|espionner|ausspionieren|spiare)\b|"
        r"\bhide (?:a|the|my) (?:camera|cam|nest cam|tracker|airtag|gps)",
    ),
    (
        "stalking",
        r"\b(?:find|get|pull|figure out|grab)\b.{0,40}"
        r"(?:\b(?:their|her|his)|(?:streamer|user|player|person|girl|guy|woman|man)'s) ip\b",
    ),
    (
        "stalking",
        r"\b(?:find|figure out)\b.{0,40}"
        r"\b(?:where (?:she|he|they) (?:actually )?lives?|(?:her|his|their) home address)\b",
    ),
    (
        "malware",
        rf"\b{_MAKE}\b.{{0,40}}"
        r"\b(?:keylogger|ransomware|trojan|botnet|rootkit|spyware|info-?stealer|stealer|malware|virus|worm)\b",
    ),
    (
        "malware",
        r"\b(?:capture|record|log|grab)s? (?:every|all) keystrokes?|\bkeylogger\b|"
        r"\b(?:grab|steal)s? .{0,25}\b(?:cookies?|session|tokens?|passwords)\b|\bddos\b",
    ),
    (
        "harassment",
        r"\bdox+(?:x)? (?:her|him|them|someone|this|that)\b|\bhow (?:do i|to|can i) dox|"
        r"\bmass[- ]report|\bsend (?:her|him|them) threats?|\bthreaten (?:her|him|them)\b",
    ),
    (
        "harassment",
        r"\bblocked me\b.{0,80}"
        r"\b(?:new accounts?|second account|another account|keep (?:replying|messaging|contacting))",
    ),
    ("harassment", r"\b(?:harass|acosar|harceler|belästigen|assediar|molestare)\b"),
    ("other_harm", r"\b(?:make|build|buy)\b.{0,20}\b(?:bomb|explosive|ghost gun|untraceable gun)\b"),
    # Plain-English phrasings the rules above let through.
    ("stalking", r"\b(?:hidden|secret|invisible) (?:tracker|tracking app|spy app|location app)\b"),
    ("fraud", r"\b(?:fake|cloned?|copycat) \w+ (?:login|log-in|sign-in|sign in) (?:page|site|screen|form)"),
]
# The other languages the layer reads (zh, ja, ru, ar, hi), one or two rules per category each.
# Written for precision like the rules above: a cue plus what makes it harmful.
_ZH_PEOPLE = r"(?:别人|他人|前任|前男友|前女友|老公|老婆|丈夫|妻子|男朋友|女朋友|同事|室友)"
_JA_PEOPLE = r"(?:他人|元彼|元カノ|彼氏|彼女|妻|夫|同僚|友達)"
_RU_PEOPLE = r"(?:жен[аыуой]|муж[аеу]?|девушк[аиуой]|парн[яюем]|бывш\w*|коллег\w*|чуж\w+)"
_AR_PEOPLE = r"(?:زوجتي|زوجي|حبيبتي|حبيبي|صديقتي|شخص آخر|زميلي)"
_HI_PEOPLE = r"(?:पत्नी|पति|गर्लफ्रेंड|बॉयफ्रेंड|किसी और|दूसरे|एक्स)"
_RULES += [
    (
        "account_takeover",
        rf"(?:盗|黑进|入侵|破解|登录|登陆|进入).{{0,10}}{_ZH_PEOPLE}.{{0,6}}(?:账号|帐号|账户|微信|邮箱|QQ)",
    ),
    (
        "account_takeover",
        rf"{_ZH_PEOPLE}的.{{0,6}}(?:账号|帐号|微信|邮箱).{{0,10}}(?:密码|登录|进入|破解|盗)",
    ),
    (
        "account_takeover",
        rf"{_JA_PEOPLE}の.{{0,10}}(?:アカウント|LINE|メール|インスタ).{{0,10}}(?:ログイン|乗っ取|ハッキング|不正アクセス)",
    ),
    ("account_takeover", r"(?:アカウント|LINE)を?乗っ取"),
    (
        "account_takeover",
        rf"(?:взломать|взлом|зайти в|войти в|доступ к).{{0,30}}(?:аккаунт|"
        rf"почт|страниц|whatsapp|телеграм)\w*.{{0,20}}{_RU_PEOPLE}",
    ),
    ("account_takeover", r"взломать (?:чужой|чужую) (?:аккаунт|почту|страницу)"),
    ("account_takeover", r"(?:اختراق|تهكير|هكر) (?:حساب|ايميل|إيميل|واتساب|انستقرام|فيسبوك)"),
    (
        "account_takeover",
        rf"(?:{_HI_PEOPLE}).{{0,30}}(?:अकाउंट|खाता|खाते|व्हाट्सएप).{{0,20}}(?:हैक|"
        rf"लॉग इन|पासवर्ड)|(?:अकाउंट|खाता) हैक",
    ),
    (
        "security_bypass",
        r"(?:绕过|破解|跳过|绕开).{0,10}(?:验证|二次验证|双重验证|验证码|激活锁|屏幕使用时间|人脸识别)",
    ),
    (
        "security_bypass",
        r"(?:回避|突破|解除|バイパス|すり抜け).{0,10}(?:二段階認証|認証|アクティベーションロック|スクリーンタイム)",
    ),
    (
        "security_bypass",
        r"(?:обойти|обход|взломать).{0,20}(?:двухфактор|2fa|код подтверждения|"
        r"блокировк|капч|верификац)",
    ),
    (
        "security_bypass",
        r"(?:تجاوز|تخطي|كسر) .{0,20}(?:التحقق|المصادقة الثنائية|رمز التحقق|"
        r"قفل التفعيل|كلمة المرور)",
    ),
    ("security_bypass", r"(?:बायपास|तोड़|तोड़ना).{0,20}(?:वेरिफिकेशन|ओटीपी|otp|2fa|टू-फैक्टर|लॉक)"),
    (
        "paywall_bypass",
        r"(?:免费|白嫖|不付钱).{0,10}(?:看|下载|用).{0,10}(?:会员|付费|vip|VIP|Netflix|网飞)|破解版",
    ),
    ("paywall_bypass", r"(?:無料で|タダで).{0,10}(?:有料|プレミアム|Netflix|見放題)|海賊版"),
    ("paywall_bypass", r"(?:бесплатно|без оплаты).{0,20}(?:премиум|подписк|netflix)|взломанн\w+ верси"),
    (
        "paywall_bypass",
        r"(?:مجانا|مجاناً|بدون دفع) .{0,20}(?:بريميوم|الاشتراك|نتفليكس)"
        r"|نسخة (?:مقرصنة|مهكرة)",
    ),
    (
        "paywall_bypass",
        r"(?:फ्री में|मुफ्त में|बिना पैसे).{0,20}(?:प्रीमियम|सब्सक्रिप्शन|"
        r"नेटफ्लिक्स)|क्रैक (?:वर्जन|ऐप)",
    ),
    ("fraud", r"(?:假|伪造).{0,4}(?:发票|收据|身份证|证件|评论|好评|病假条)|钓鱼(?:网站|页面|邮件|链接)"),
    ("fraud", r"(?:偽の|偽造).{0,6}(?:領収書|請求書|身分証|書類|レビュー|口コミ)|フィッシング"),
    ("fraud", r"(?:поддельн|фальшив|фейков)\w*.{0,10}(?:чек|счет|счёт|паспорт|документ|отзыв|справк)|фишинг"),
    ("fraud", r"(?:مزور|مزيف|مزيفة|مزورة)|تصيد|احتيال"),
    ("fraud", r"(?:फर्जी|नकली).{0,10}(?:रसीद|बिल|आईडी|दस्तावेज|रिव्यू|लॉगिन)|फ़िशिंग|फिशिंग"),
    (
        "stalking",
        rf"(?:偷偷|秘密|暗中|悄悄).{{0,10}}(?:定位|跟踪|监视|监控|查看|看).{{0,10}}(?:手机|微信|"
        rf"聊天|位置|短信)|(?:跟踪|监视|监控){_ZH_PEOPLE}",
    ),
    (
        "stalking",
        r"(?:こっそり|内緒で|バレずに|バレないように).{0,20}(?:位置|居場所|LINE|メッセージ|見る|追跡|監視)|ストーカー",
    ),
    (
        "stalking",
        rf"(?:следить|шпионить|отслеживать|читать переписку).{{0,30}}{_RU_PEOPLE}|"
        rf"шпион|(?:тайно|незаметно).{{0,20}}(?:читать|отслеживать|следить)",
    ),
    ("stalking", r"(?:تجسس|التجسس|أتجسس)|(?:تتبع|مراقبة) (?:موقع|هاتف|رسائل) (?:زوجتي|زوجي|حبيبتي|صديقتي)"),
    (
        "stalking",
        rf"जासूसी|चुपके से.{{0,20}}(?:लोकेशन|मैसेज|फोन|ट्रैक)|{_HI_PEOPLE}.{{0,20}}(?:लोकेशन ट्रैक|"
        rf"फोन ट्रैक)",
    ),
    ("malware", r"(?:写|做|制作|编写|开发).{0,10}(?:木马|键盘记录器|勒索软件|病毒|盗号)"),
    (
        "malware",
        r"(?:作る|作成|書く|作り方).{0,10}(?:キーロガー|ランサムウェア|トロイの木馬|ウイルス)|(?:キーロガー|ランサムウェア)の?(?:作り方|作成)",
    ),
    ("malware", r"(?:написать|создать|сделать).{0,20}(?:кейлоггер|троян|вирус|вымогател|стилер)"),
    ("malware", r"(?:برمجة|صنع|كتابة|انشاء|إنشاء) .{0,10}(?:فيروس|كيلوجر|برنامج فدية|تروجان)"),
    ("malware", r"(?:वायरस|कीलॉगर|रैंसमवेयर|ट्रोजन).{0,20}(?:बनाना|बनाऊं|बनाएं|बनाने)"),
    ("harassment", r"人肉|骚扰|晒す|嫌がらせ|затравить|травл[яи]|доксинг|تحرش|مضايقة|उत्पीड़न|परेशान करना"),
    (
        "other_harm",
        r"(?:制作|做|自制).{0,6}(?:炸弹|炸药)|爆弾(?:の作り方|を作)|(?:сделать|изготовить)"
        r".{0,10}(?:бомбу|взрывчатк)|(?:صنع|تصنيع) (?:قنبلة|متفجرات)|बम (?:बनाना|"
        r"कैसे बना)",
    ),
]
# The dataset's other languages (de, es, fr, it, pt), where the English rules above have no
# counterpart, and English phrasings in a different word order than the rules above expect.
_ACCESS = (
    r"(?:komme? ich in|reinkommen|einloggen in|zugriff auf|accéder (?:au|à|aux)|entrer dans|"
    r"accedere (?:al|all|a)|entrare (?:nel|nell|in)|entr(?:o|ar) (?:al|a|en|na|no)|acessar|"
    r"acceder (?:a|al))"
)
_ACCOUNT = (
    r"(?:account|konto|compte|conta|cuenta|profil|perfil|gmail|instagram|facebook|whatsapp|e-?mail|correo)"
)
_TWO_FACTOR = (
    r"(?:verificação em duas etapas|dois fatores|due fattori|autenticazione|zwei-faktor|2-faktor|"
    r"deux facteurs|double authentification|doble factor|verificación en dos pasos|dos pasos)"
)
_SECRETLY = r"(?:di nascosto|à son insu|heimlich|en secreto|a escondidas|às escondidas|en cachette)"
_RULES += [
    ("account_takeover", rf"\b{_ACCESS}\b.{{0,60}}\b{_ACCOUNT}\b.{{0,50}}{_PERSON}"),
    ("security_bypass", rf"\b{_BYPASS}\b.{{0,40}}{_TWO_FACTOR}"),
    (
        "security_bypass",
        r"\b(?:remove|unlock|get rid of|disable|bypass)\b.{0,20}\b(?:activation|icloud) lock\b.{0,60}"
        r"\b(?:found|stolen|not mine|someone else's)\b",
    ),
    ("paywall_bypass", r"\b(?:modded|cracked|hacked|patched|pirated) (?:apk|app|client|version)s?\b"),
    (
        "paywall_bypass",
        rf"\b(?:gratis|gratuitement|kostenlos|grátis|gratuitamente)\b.{{0,30}}\b{_FREE}|"
        rf"\b{_PAID}\b.{{0,30}}\b(?:gratis|gratuitement|kostenlos|grátis|gratuitamente)\b",
    ),
    (
        "fraud",
        r"\b(?:chargeback|charge back|dispute|refund claim)\b.{0,60}"
        r"\b(?:actually|already|even though i|although i) (?:received|got|have)\b",
    ),
    (
        "fraud",
        r"\b(?:página|pagina|page|seite|sitio|site)s? (?:falsa|falso|fausse|fake|gefälschte)\b|"
        r"\b(?:falsa|falso|fausse|gefälschte|fake)\b.{0,20}\blogin",
    ),
    (
        "stalking",
        rf"{_SECRETLY}.{{0,40}}{_WATCHED}|{_WATCHED}.{{0,40}}{_SECRETLY}|"
        rf"\b(?:espía|espion|spionage|spia)\b.{{0,40}}{_PERSON}",
    ),
    (
        "stalking",
        r"\bhide (?:an?|the|my) (?:camera|cam|tracker|airtag|tile|gps)|"
        r"\b(?:airtag|tile|tracker|gps)\b.{0,40}\b(?:in|on|under) (?:my ex's|her|his|their|someone's)\b",
    ),
    (
        "stalking",
        r"\bhome address of (?:a|an|the|this|that|some)\b.{0,30}"
        r"\b(?:streamer|youtuber|user|player|person|girl|guy|woman|man|someone|who)\b|"
        r"\bwohnadresse\b.{0,40}\b(?:jemand\w*|blockiert)",
    ),
    (
        "harassment",
        r"\b(?:new|more|fake|other|second|multiple|\d+) (?:\w+ )?accounts?\b.{0,60}"
        r"\b(?:blocked me|who blocked)",
    ),
    ("account_takeover", rf"(?:أدخل|الدخول|ادخل) (?:إلى|الى|على) حساب.{{0,10}}{_AR_PEOPLE}"),
    ("security_bypass", r"(?:टू-फैक्टर|ओटीपी|otp|वेरिफिकेशन|ऑथेंटिकेशन).{0,30}बायपास"),
    ("stalking", r"(?:छुपा हुआ|छिपा हुआ|छुपाकर).{0,20}(?:ट्रैकिंग|जासूसी|ऐप)"),
    ("security_bypass", r"他人.{0,20}(?:二段階認証|認証).{0,10}(?:回避|突破|バイパス|すり抜け)"),
    ("harassment", r"ブロック.{0,20}(?:別アカ|別のアカウント|新しいアカウント)"),
    ("malware", r"(?:写|做|制作|编写|开发).{0,20}(?:木马|键盘记录器|勒索软件|病毒)|偷取.{0,10}密码"),
    ("fraud", r"(?:假|伪造|仿冒).{0,8}(?:登录|登陆)(?:页面|网站|界面)|骗.{0,6}密码"),
]
_COMPILED = [(cat, re.compile(pattern, re.IGNORECASE | re.DOTALL)) for cat, pattern in _RULES]

_REASONS = {
    "account_takeover": "I can't help with getting into someone else's account: only its owner can sign in "
    "or recover it.",
    "security_bypass": "I can't help with getting around a security check such as two-factor codes, "
    "verification or device locks.",
    "paywall_bypass": "I can't help with getting paid content or features without paying for them.",
    "fraud": "I can't help with this because it would deceive a company or a person to get money, goods "
    "or access.",
    "stalking": "I can't help with watching, tracking or reading someone's data without their knowledge "
    "and consent.",
    "malware": "I can't help with building software that captures people's data or takes over their devices.",
    "harassment": "I can't help with contacting or exposing someone who has chosen not to hear from you.",
    "other_harm": "I can't help with this because it could put people at risk of serious harm.",
}
_ALTERNATIVES = {
    "account_takeover": [
        "Ask the account owner to share what you need.",
        "Use the app's official recovery flow for your own account.",
    ],
    "security_bypass": [
        "Ask the person who controls the check to complete it.",
        "Contact the service's official support.",
    ],
    "paywall_bypass": ["Look for the service's free tier, trial or library access."],
    "fraud": ["Contact the company's support to resolve the problem honestly."],
    "stalking": [
        "Talk to the person directly.",
        "Use sharing features both people agree to, such as family location sharing.",
    ],
    "malware": ["Use approved monitoring tools with the users' informed consent."],
    "harassment": ["Respect the block.", "Report real abuse through the platform's reporting tools."],
    "other_harm": ["If someone is in danger, contact local emergency services."],
}
# Other languages get one general reason and alternative (the intent's language, see detect_language).
_LOCAL = {
    "es": (
        "No puedo ayudar con esto: podría dañar a otra persona o saltarse una protección.",
        "Usa el proceso oficial de la app o contacta con su soporte.",
    ),
    "fr": (
        "Je ne peux pas aider : cela pourrait nuire à quelqu'un ou contourner une protection.",
        "Utilisez la procédure officielle de l'app ou contactez son support.",
    ),
    "de": (
        "Dabei kann ich nicht helfen: Es könnte jemandem schaden oder einen Schutz umgehen.",
        "Nutze den offiziellen Weg der App oder wende dich an ihren Support.",
    ),
    "pt": (
        "Não posso ajudar com isso: pode prejudicar outra pessoa ou contornar uma proteção.",
        "Use o processo oficial do app ou fale com o suporte.",
    ),
    "it": (
        "Non posso aiutarti: potrebbe danneggiare qualcuno o aggirare una protezione.",
        "Usa la procedura ufficiale dell'app o contatta l'assistenza.",
    ),
    "zh": ("我不能帮助做这件事：它可能伤害他人或绕过安全保护。", "请使用应用的官方流程，或联系其客服。"),
    "ja": (
        "この依頼には協力できません。他の人を傷つけたり、保護を回避したりするおそれがあります。",
        "アプリの公式の手順を使うか、サポートに問い合わせてください。",
    ),
    "ru": (
        "Не могу помочь с этим: это может навредить другому человеку или обойти защиту.",
        "Воспользуйтесь официальной процедурой приложения или обратитесь в поддержку.",
    ),
    "ar": (
        "لا أستطيع المساعدة في هذا: قد يؤذي شخصاً آخر أو يتجاوز وسيلة حماية.",
        "استخدم الطريقة الرسمية في التطبيق أو تواصل مع الدعم.",
    ),
    "hi": (
        "मैं इसमें मदद नहीं कर सकता: इससे किसी और को नुकसान हो सकता है या सुरक्षा को दरकिनार किया जा सकता है।",
        "ऐप की आधिकारिक प्रक्रिया अपनाएँ या सहायता टीम से संपर्क करें।",
    ),
}
_STOPWORDS = {
    "es": "el la los las que de mi mis cómo como para por sin una con se puedo quiero",
    "fr": "le la les de des mon ma mes comment pour sans une avec je est que qu'elle",
    "de": "der die das und ich mein meine wie ohne ein eine mit nicht ist kann",
    "pt": "o a os as de do da meu minha como para sem uma com não eu posso quero",
    "it": "il lo la gli le di del mio mia come per senza una con non io posso voglio",
}
# English's own (none that the lists above share), to beat: English is full of "a", "do" and
# "as", and "I do security awareness for a small credit union ..." was refused in Portuguese.
# Over the dataset's intents this takes the misread languages from 35 to 7.
_ENGLISH = {
    "the", "an", "to", "my", "how", "can", "is", "it", "of", "and", "for", "with", "without",
    "from", "that", "this", "you", "your", "what",
}  # fmt: skip


def categories() -> list[str]:
    """The refusal categories, from data/schema.json."""
    return list(load_schema()["$defs"]["refusal"]["properties"]["category"]["enum"])


# Latin look-alikes from Cyrillic and Greek. In a mostly Latin text every one is folded (even a
# word of them only, "а"); otherwise only inside a word that mixes scripts (a disguise such as
# "hаck" with a Cyrillic а), so a Russian text stays Russian.
_CONFUSABLES = str.maketrans(
    "аеорсухіјѕԁԛԝАВЕКМНОРСТХІЈЅαεικνορτυχΑΒΕΗΙΚΜΝΟΡΤΥΧ",
    "aeopcyxijsdqwABEKMHOPCTXIJSaeikvoptuxABEHIKMNOPTYX",
)
# Leetspeak, folded inside any word that has a letter ("h4ck", "m3", "3x'5"); "2fa" keeps its 2
# (not a leet digit), and "10k" or a price is still read as written in the plain reading.
_LEET = str.maketrans("013457@$", "oieastas")
_WORD = re.compile(r"\S+")


def _fold(word: str) -> str:
    scripts = {
        ("latin" if ch.isascii() else unicodedata.name(ch, "?").split()[0]) for ch in word if ch.isalpha()
    }
    if "latin" in scripts and scripts & {"CYRILLIC", "GREEK"}:
        word = word.translate(_CONFUSABLES)
    if any(ch.isalpha() for ch in word) and any(ch in "013457@$" for ch in word):
        word = word.translate(_LEET)
    return word


# Letters spelled out one by one ("s p o t i f y"): joined in the folded reading.
_SPELLED = re.compile(r"\b(?:\w )(?:\w ){2,}\w\b")


def normalize(text: str, fold: bool = True) -> str:
    """What the rules read: NFKC (full-width letters become ASCII), format characters
    (zero-width, bidi controls) removed, lower case, and with `fold` look-alike letters and
    leetspeak folded."""
    text = unicodedata.normalize("NFKC", text)
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Cf")
    if not fold:
        return text.lower()
    text = _SPELLED.sub(lambda m: m.group(0).replace(" ", ""), text)
    if _mostly_latin(text):  # Cyrillic or Greek look-alikes in a Latin text, even a word of them only ("а")
        text = text.translate(_CONFUSABLES)
    return _WORD.sub(lambda m: _fold(m.group(0)), text).lower()


def _mostly_latin(text: str) -> bool:
    letters = [ch for ch in text if ch.isalpha()]
    latin = sum(ch.isascii() or "LATIN" in unicodedata.name(ch, "") for ch in letters)
    return bool(letters) and latin > len(letters) / 2


@dataclass(frozen=True)
class Decision:
    """A rule's verdict: the category, the rule that matched (`category#index` in _RULES) and
    the text it matched in (the normalized intent, or the context field named)."""

    category: str
    rule: str
    where: str


def _context_text(context: dict[str, Any] | None) -> list[tuple[str, str]]:
    """(field, text) of every context value the rules read: a request can hide its aim there."""
    out = []
    for key, value in (context or {}).items():
        values = value if isinstance(value, list) else [value]
        text = " ".join(v for v in values if isinstance(v, str))
        if text:
            out.append((f"context.{key}", text))
    return out


def decide(intent: str, context: dict[str, Any] | None = None) -> Decision | None:
    """The first rule that matches the normalized intent, then the intent with the context."""
    # Both readings: folding helps against disguises, but "under 10k" must stay itself. A
    # reading equal to an earlier one (no disguise to fold, no context) is not searched again.
    fields = [text for _, text in _context_text(context)]
    texts: dict[str, str] = {}
    for fold in (False, True):
        mine = normalize(intent, fold)
        texts.setdefault(mine, "intent")
        if fields:
            texts.setdefault(" ".join([mine, *(normalize(t, fold) for t in fields)]), "intent+context")
    for text, where in texts.items():
        for index, (category, pattern) in enumerate(_COMPILED):
            if pattern.search(text):
                return Decision(category, f"{category}#{index}", where)
    return None


def match(intent: str, context: dict[str, Any] | None = None) -> str | None:
    """The category of the first rule the intent (and context) match, or None when none does."""
    decision = decide(intent, context)
    return decision.category if decision else None


_SCRIPTS = (("ja", r"[\u3040-\u30ff]"), ("zh", r"[\u4e00-\u9fff]"), ("ru", r"[\u0400-\u04ff]"))
_SCRIPTS += (("ar", r"[\u0600-\u06ff]"), ("hi", r"[\u0900-\u097f]"))


def detect_language(intent: str, context: dict[str, Any] | None = None) -> str:
    """The reply language: the context locale's language, else the intent's script (kana: ja,
    Han: zh, Cyrillic: ru, Arabic: ar, Devanagari: hi), else its stopwords, else 'en'."""
    locale = (context or {}).get("locale") or ""
    if locale[:2] in _LOCAL or locale[:2] == "en":
        return locale[:2]
    for language, script in _SCRIPTS:
        if re.search(script, intent):
            return language
    words = re.findall(r"[\w']+", intent.lower())
    hits = {lang: sum(w in stops.split() for w in words) for lang, stops in _STOPWORDS.items()}
    best = max(hits, key=hits.get)
    english = sum(w in _ENGLISH for w in words)
    return best if hits[best] >= 2 and hits[best] > max(len(words) // 10, english) else "en"


def refusal(category: str, language: str = "en") -> dict[str, Any]:
    """A schema-valid refusal for `category`, in `language` when the layer has text for it."""
    if category not in categories():
        raise ValueError(f"unknown refusal category {category!r}; the schema allows {categories()}")
    if language in _LOCAL:
        reason, alternative = _LOCAL[language]
        return {"schema": "refusal", "category": category, "reason": reason, "alternatives": [alternative]}
    return {
        "schema": "refusal",
        "category": category,
        "reason": _REASONS[category],
        "alternatives": list(_ALTERNATIVES[category]),
    }


def screen(intent: str, context: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """A refusal when a rule matches the intent or context, else None."""
    decision = decide(intent, context)
    return None if decision is None else refusal(decision.category, detect_language(intent, context))
