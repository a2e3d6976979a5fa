"""``make demo``: the monitoring loop told end to end on the simulator (see ``demo.loop``)."""
