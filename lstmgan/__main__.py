from lstmgan.cli import entrypoint

entrypoint()
