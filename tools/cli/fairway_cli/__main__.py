from fairway_cli.main import app

app()
