"""The scenario simulator: a described cluster and its workloads (`scenario`) run through the
pure core in virtual time (`runner`). Pure, like the core; `fairway simulate` and the scenario
tests use it."""

from fairway_scheduler.simulation.runner import simulate
from fairway_scheduler.simulation.scenario import Scenario, ScenarioError, parse_scenario

__all__ = ["Scenario", "ScenarioError", "parse_scenario", "simulate"]
