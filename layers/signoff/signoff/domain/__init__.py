"""The domain core: states, transitions and rules. Imports neither boto3 nor openai."""
