"""Stand-in for `ultralytics.nn` (see the package docstring)."""
