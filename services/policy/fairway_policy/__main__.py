from fairway_policy.app import build
from fairway_runtime import main

main(build)
