"""Activity names: the only thing workflows know of activities (no I/O imports there)."""

LAUNCH_INSTANCE = "launch_instance"
STOP_INSTANCE = "stop_instance"
TERMINATE_INSTANCE = "terminate_instance"
RUN_RECIPES = "run_recipes"
FETCH_COOKBOOKS = "fetch_cookbooks"
CHECK_HEALTH = "check_health"
PROBE_LAYER = "probe_layer"
