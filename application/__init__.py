"""The application: wiring, the guard service, the pipeline and the commands."""
