// Package supervisor runs an etcdsync syncer: the supervision tree of
// actors (package actors) under one root, its restart backoff and escalation
// policy, and the host-facing entry point Start.
//
// # Usage
//
//	system := supervisor.NewSystem(logger) // or the host's own actor system
//	s, err := supervisor.Start(system, supervisor.Config{
//		Endpoints: []string{"http://127.0.0.1:2379"},
//		API:       supervisor.APIv3, // etcd's v3 API; the default is v2
//		Prefix:    "/calico/v1",
//		Logger:    logger,
//	}, callbacks)
//	if err != nil { ... } // a *ConfigError names the bad field
//	defer s.Stop(ctx)
//
// # Supervision
//
// The root restarts a failed watcher after a jittered exponential backoff
// (Config.Backoff; protoactor-go's own strategies cannot be given a clock), and the
// merger, snapshot reader, poller and consumer at once. A cluster-ID change
// or an index regression is escalated to Config.OnClusterReset: rebuild the
// actors against the new datastore keeping the host's keys, or stop and
// report the error. Nothing here exits the process or calls log.Fatal.
//
// The package must not hold merge logic: that is actors.MergeCore.
package supervisor
