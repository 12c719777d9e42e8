"""`python -m fairway_kubesim --profile FILE --kubeconfig PATH [--port N] [--host ADDR]`."""

from fairway_kubesim.cli import app

if __name__ == "__main__":
    app(prog_name="python -m fairway_kubesim")
