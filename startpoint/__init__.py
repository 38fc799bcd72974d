"""startpoint's domain library: plain Python, never imports dagster."""
