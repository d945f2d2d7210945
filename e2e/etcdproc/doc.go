// Package etcdproc starts and stops real etcd processes for specs.
//
// It runs the bin/etcd built by `make etcd` (etcd 3.5 with --enable-v2),
// or with Options.Version V37 its bin/etcd37 (etcd 3.7, the v3 API only), on
// free loopback ports, one data directory per member, so that the e2e
// suites can check the syncer and the simulated etcd (package etcdsim)
// against the real thing: member kills and restarts (Kill, StopMember,
// Restart), leader changes (Leader tells who leads), whole-cluster
// rebuilds (Rebuild: a new cluster ID, the index starting over) and
// restores (Backup copies every member's data directory, Restore puts the
// copies back: the same cluster ID, the index going back in time), frozen
// members (Freeze, Thaw: SIGSTOP), and, with Options.PeerProxies, a member
// cut off from its quorum while it keeps serving clients (Partition, Heal:
// the proxies refuse the peer connections to and from it, told apart by
// rafthttp's X-Server-From header).
//
// Facts about etcd 3.5 these operations show, which specs may rely on:
// a fresh one-member cluster is at v2 index 3 (three members: 7); every
// member (re)start takes one v2 index (the member publishes its
// attributes); a graceful
// stop waits seconds for open watch requests, then breaks them (client/v2
// reports "unexpected EOF"), while a kill breaks them at once.
//
// On etcd 3.7 every operation works the same, through the v3 API and
// GET /health where 3.5 uses the v2 API: Leader and Partition ask the
// members' Status, Backup records no v2 index (Backup.Revision is there
// on both versions), and KeysAPI fails with ErrNoV2. Client (clientv3,
// both versions) is what a spec writes and checks with there; Compact
// compacts, Revision reads the current revision. Facts about etcd 3.7
// these operations show: a restart, a Backup or a Restore takes no
// revision (on 3.5 neither); a v2 request (GET /v2/keys/) is answered
// "404 page not found" in text/plain, and client/v2 reports "client:
// response is invalid json. The endpoint is probably not valid etcd
// cluster endpoint". Its JSON gateway (POST /v3/kv/put) answers with
// snake_case fields and 64-bit numbers as decimal strings
// ({"header":{"cluster_id":"1595...","revision":"3",...}}).
//
// # Usage
//
//	c, err := etcdproc.StartCluster(3, etcdproc.Options{Output: GinkgoWriter})
//	Expect(err).NotTo(HaveOccurred())
//	DeferCleanup(c.Stop)
//	cl, err := client.New(client.Config{Endpoints: c.Endpoints()})
//	Expect(err).NotTo(HaveOccurred())
//	kapi := client.NewKeysAPI(cl) // go.etcd.io/etcd/client/v2
//	...
//	Expect(c.Kill(1)).To(Succeed())
//	Expect(c.Restart(1)).To(Succeed())
//
// and on etcd 3.7 (or 3.5, which serves v3 as well):
//
//	c, err := etcdproc.StartCluster(3, etcdproc.Options{Version: etcdproc.V37, Output: GinkgoWriter})
//	Expect(err).NotTo(HaveOccurred())
//	DeferCleanup(c.Stop)
//	cl, err := c.Client() // go.etcd.io/etcd/client/v3 at the 3.5 pin
//	Expect(err).NotTo(HaveOccurred())
//	DeferCleanup(cl.Close)
//
// # The caller's duties
//
//  1. Call Stop when done (DeferCleanup(c.Stop)); it is safe to call more
//     than once. Every process is also started with Pdeathsig=SIGKILL, so
//     no etcd outlives the test process even if Stop is never reached.
//  2. Give every cluster its own Options.Dir or leave it empty (a fresh
//     temporary directory, removed by Stop).
//  3. Run specs that kill, restart, rebuild or restore a cluster shared by
//     other specs as Serial: the cluster is unavailable while they run.
//
// A Cluster's methods may be called from any goroutine, but they are
// serialised: a Restart waits for a concurrent Kill to finish.
//
// The binary is the one named by the ETCDSYNC_ETCD_BIN environment
// variable (ETCDSYNC_ETCD37_BIN for 3.7), else bin/etcd (bin/etcd37) in
// the module root (the nearest directory above the working directory that
// holds go.mod).
package etcdproc
