from _fake_common import run_service

run_service()
