from fairway_runtime import main
from fairway_scheduler.app import build

main(build)
