"""Intrinsic functions (`States.Format(...)`, `States.ArrayRange(...)`, ...): `parser` parses, checks and
evaluates a call; `functions` holds the functions themselves."""
