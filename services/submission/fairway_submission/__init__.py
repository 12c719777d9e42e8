"""Fairway submission service: the public REST API.

`app` wires it; `service.SubmissionService` runs it (the runtime, settings, tokens, the other
services as its `Peers`); `handlers` are its NATS consumers; each slice (`identity`, `org`,
`workloads`, `policies`, `telemetry`) holds its routes (`routes`, a module-level router), its
API models (`models`) and its pure checks (`checks`); `core` is the pure logic they share;
`repository` has all of its SQL; `testing` its test hooks. Imports go one way: app and testing
> routes and handlers > dependencies > service > repository > models, checks and core.
"""
