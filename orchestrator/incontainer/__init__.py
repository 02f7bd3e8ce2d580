"""Scripts tagmatrix runs inside containers (not imported by tagmatrix itself)."""
