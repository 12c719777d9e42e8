from fairway_metrics.app import build
from fairway_runtime import main

main(build)
