"""Data-stage assets: raw -> validated -> leave-one-out splits -> Swing pairs -> training samples."""
