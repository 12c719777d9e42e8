"""The console's routes without a browser (httpx against the running platform): signing in
and out and the cookie that carries the token, what an anonymous or a researcher's request
gets, and every page rendering for an administrator."""

import pytest

from tests.console.conftest import console_client, make_project, make_user

PAGES = ("/", "/workloads", "/submit", "/submit?type=distributed", "/submit?type=inferences",
         "/organisation", "/nodes", "/charts", "/charts?scope=project", "/charts?scope=department")


def sign_in(client, user) -> None:
    response = client.post("/sign-in", data={"username": user[0], "password": user[1],
                                              "next": "/workloads"})
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/workloads"


@pytest.mark.parametrize("path", [*PAGES, "/workloads/live"])
def test_without_signing_in_every_page_sends_to_the_sign_in_form(stack, path):
    with console_client(stack) as client:
        response = client.get(path)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/sign-in?next=/")


def test_the_token_is_kept_in_an_http_only_same_site_cookie_and_sign_out_clears_it(
        stack, admin_user):
    with console_client(stack) as client:
        sign_in(client, admin_user)
        [cookie] = list(client.cookies.jar)
        assert cookie.name == "fairway_console"
        assert cookie.has_nonstandard_attr("HttpOnly")
        assert cookie.get_nonstandard_attr("SameSite") == "strict"
        assert client.get("/workloads").status_code == 200
        response = client.post("/sign-out")
        assert response.status_code == 303
        assert 'fairway_console=""' in response.headers["set-cookie"]
        assert client.get("/workloads").status_code == 303


def test_a_wrong_password_answers_401_with_the_form_again(stack, admin_user):
    with console_client(stack) as client:
        response = client.post("/sign-in", data={"username": admin_user[0],
                                                 "password": "wrong-password"})
    assert response.status_code == 401
    assert "wrong username or password" in response.text
    assert "set-cookie" not in response.headers


def test_after_signing_in_only_a_local_path_is_followed(stack, admin_user):
    with console_client(stack) as client:
        response = client.post("/sign-in", data={"username": admin_user[0],
                                                 "password": admin_user[1],
                                                 "next": "//elsewhere.example/"})
    assert response.headers["location"] == "/"


@pytest.mark.parametrize("path", PAGES)
def test_every_page_renders_for_an_administrator(stack, admin_user, pools, path):
    with console_client(stack) as client:
        sign_in(client, admin_user)
        response = client.get(path)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert "<main" in response.text and "<h1>" in response.text


def test_a_researcher_cannot_see_another_projects_workload_nor_act_on_it(stack, api):
    mine, theirs = make_project(api, "r-mine"), make_project(api, "r-theirs")
    other = api.post("/api/v1/workloads/trainings", json={
        "name": "hidden", "projectId": theirs, "spec": {"image": "busybox"}}).json()
    researcher = make_user(api, "L1 researcher", "project", mine)
    with console_client(stack) as client:
        sign_in(client, researcher)
        assert client.get(f"/workloads/{other['workloadId']}").status_code == 404
        response = client.post("/workloads/actions", data={
            "action": "delete", "id": other["workloadId"]})
        assert response.status_code == 303
        assert "refused" in response.headers["location"]
        assert other["workloadId"] not in client.get("/workloads").text
    assert api.get(f"/api/v1/workloads/{other['workloadId']}").json()["desiredPhase"] \
        == "Running"
    api.delete(f"/api/v1/workloads/trainings/{other['workloadId']}")


def test_a_viewer_is_shown_no_actions(stack, api):
    project = make_project(api, "viewer")
    viewer = make_user(api, "Viewer", "project", project)
    with console_client(stack) as client:
        sign_in(client, viewer)
        page = client.get("/workloads").text
    assert "Stop ticked" not in page


def test_the_openapi_document_has_no_console_route(stack):
    with console_client(stack) as client:
        paths = client.get("/api/openapi.json").json()["paths"]
    assert all(path.startswith("/api/") or path in ("/healthz", "/readyz", "/metrics")
               for path in paths), sorted(paths)


def test_a_researcher_may_not_create_a_department(stack, api):
    project = make_project(api, "no-dept")
    researcher = make_user(api, "L1 researcher", "project", project)
    with console_client(stack) as client:
        sign_in(client, researcher)
        assert "New department" not in client.get("/organisation").text
        response = client.post("/organisation/department/save", data={"name": "sneaky"})
    assert response.status_code == 403
    assert "may not create departments" in response.text
    assert "sneaky" not in {d["name"] for d in
                            api.get("/api/v1/org-unit/departments").json()["departments"]}
