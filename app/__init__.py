"""The translators' web app: ``marco-app`` (or ``python -m app``) serves it; see app.main."""
