from fairway_lifecycle.app import build
from fairway_runtime import main

main(build)
