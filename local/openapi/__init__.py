"""The client API's OpenAPI document, generated from the client API's own routes and models."""
