from oculi.cli.main import app

app()
