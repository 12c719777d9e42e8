"""`fairway login | logout | whoami`: the token lives in the user's config file (0600)."""

from typing import Annotated

import typer

from fairway_cli import config
from fairway_cli.client import Api, CliError, api_url
from fairway_cli.output import as_json, console, fail


def login(
    username: Annotated[str | None, typer.Option("--username", "-u")] = None,
    password: Annotated[str | None, typer.Option("--password", help="prompted when omitted",
                                                 envvar="FAIRWAY_PASSWORD")] = None,
    client_id: Annotated[str | None, typer.Option("--client-id",
                                                  help="log in as a service account")] = None,
    client_secret: Annotated[str | None, typer.Option("--client-secret",
                                                      envvar="FAIRWAY_CLIENT_SECRET")] = None,
    url: Annotated[str | None, typer.Option("--url", help="the API, e.g. "
                                                          "https://fairway.example.com")] = None,
) -> None:
    """Log in; the token is kept in your config file, readable by you only."""
    try:
        base = (url or api_url()).rstrip("/")
        if client_id:
            secret = client_secret or typer.prompt("client secret", hide_input=True)
            body = {"grantType": "client_credentials", "clientId": client_id,
                    "clientSecret": secret}
        else:
            username = username or typer.prompt("username")
            secret = password or typer.prompt("password", hide_input=True)
            body = {"grantType": "password", "username": username, "password": secret}
        reply = Api(authenticated=False, base=base).call("POST", "/api/v1/token", json=body)
        path = config.update(apiUrl=base, token=reply["accessToken"])
    except CliError as exc:
        fail(exc)
    hours = reply["expiresIn"] / 3600
    console.print(f"logged in to {base} as [bold]{client_id or username}[/bold] "
                  f"(token valid {hours:.0f} h, kept in {path})", highlight=False)


def logout() -> None:
    """Forget the token."""
    config.update(token=None)
    console.print("logged out")


def whoami(json_output: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Who the API thinks you are, and your access rules."""
    try:
        me = Api().call("GET", "/api/v1/me")
    except CliError as exc:
        fail(exc)
    if json_output:
        as_json(me)
        return
    console.print(f"[bold]{me['subject']}[/bold] ({me['subjectType']}) at {api_url()}",
                  highlight=False)
    for rule in me["accessRules"]:
        scope = rule["scopeType"] + (f" {rule['scopeId']}" if rule["scopeId"] else "")
        console.print(f"  {rule['roleName']} on {scope}", highlight=False)
    if project := config.load().get("project"):
        console.print(f"current project: {project}", highlight=False)
