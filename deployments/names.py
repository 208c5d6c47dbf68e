"""Names of the two Serve deployments, used by whoever builds them and whoever
looks them up by name (the router, the client, the benchmarks)."""

PROVIDER_DEPLOYMENT_NAME = "ProviderDeployment"
ROUTER_DEPLOYMENT_NAME = "RegistryRouter"
