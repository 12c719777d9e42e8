"""The `fairway` command line: the command tree. Commands live in modules named for their
subject (session, workload_commands, org_commands); this file only puts them together."""

import typer

from fairway_cli import (
    lifecycle,
    log_commands,
    org_commands,
    policy_commands,
    session,
    simulate,
    workload_commands,
)

app = typer.Typer(help="Fairway: fair, fast GPU workload management for Kubernetes.",
                  no_args_is_help=True, pretty_exceptions_enable=False)


@app.command()
def up() -> None:
    """Run the whole platform on this machine (embedded NATS, PostgreSQL, kubesim, services)."""
    from fairway_devstack.up import main as up_main

    up_main()


app.command()(session.login)
app.command()(session.logout)
app.command()(session.whoami)
app.add_typer(workload_commands.submit_app, name="submit")
app.command("list")(workload_commands.list_workloads)
app.command("watch")(workload_commands.watch_workloads)
app.command()(workload_commands.describe)
app.command()(workload_commands.suspend)
app.command()(workload_commands.resume)
app.command()(workload_commands.delete)
app.command()(log_commands.logs)
app.add_typer(org_commands.project_app, name="project")
app.add_typer(org_commands.department_app, name="department")
app.add_typer(org_commands.node_pool_app, name="node-pool")
app.add_typer(org_commands.top_app, name="top")
app.add_typer(policy_commands.policy_app, name="policy")
app.command("simulate")(simulate.simulate_command)
app.add_typer(lifecycle.app, name="lifecycle")


def _mount_kubesim() -> None:
    try:
        from fairway_kubesim.cli import app as kubesim_app
    except ImportError:
        return
    app.add_typer(kubesim_app, name="kubesim", help="Run the simulated GPU cluster alone.")


_mount_kubesim()

if __name__ == "__main__":
    app()
