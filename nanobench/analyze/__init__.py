"""Analysis: runs loaded from storage, statistics, equivalence, verdicts, gates."""
