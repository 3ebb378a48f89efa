"""stepsmith stage: data."""
