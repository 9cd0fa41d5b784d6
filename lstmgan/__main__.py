from lstmgan.cli.main import entrypoint

entrypoint()
