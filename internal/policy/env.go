package policy

// EnvAllowed reports whether a key issued for keyEnv (the env part of
// "kg_<env>_...") may use a deployment tagged deploymentEnv. A tagged
// deployment accepts only keys of exactly the same env, so a "test" key can
// never reach a "live" deployment; an untagged deployment accepts every key.
func EnvAllowed(keyEnv, deploymentEnv string) bool {
	return deploymentEnv == "" || keyEnv == deploymentEnv
}
