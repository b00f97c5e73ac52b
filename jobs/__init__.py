"""Jobs, schedules, sensors and the Dagster ``Definitions`` of the OxyRec code location."""
