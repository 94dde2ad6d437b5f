"""Data access: the single DynamoDB table. Every state transition is a conditional write."""
