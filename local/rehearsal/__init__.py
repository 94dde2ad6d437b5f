"""A `sam deploy` rehearsal in moto's CloudFormation (run in its own process: moto's in-process
mock resets every backend it knows when it ends)."""
