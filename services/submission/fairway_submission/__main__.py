from fairway_runtime import main
from fairway_submission.app import build

main(build)
