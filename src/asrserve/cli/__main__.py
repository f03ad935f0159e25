from asrserve.cli.main import app

app(prog_name="asrserve")
