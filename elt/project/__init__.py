"""Reading a project: profiles.yml, seed specs, model files."""
