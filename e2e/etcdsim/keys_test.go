package etcdsim_test

import (
	"context"
	"errors"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"go.etcd.io/etcd/client/v2"

	"github.com/etcdsync/etcdsync/e2e/etcdsim"
)

// must returns the response of a call that must succeed.
func must(resp *client.Response, err error) *client.Response {
	GinkgoHelper()
	Expect(err).NotTo(HaveOccurred())
	return resp
}

// keys lists the keys of nodes, in their order.
func keys(nodes client.Nodes) []string {
	var ks []string
	for _, n := range nodes {
		ks = append(ks, n.Key)
	}
	return ks
}

var _ = Describe("Server", func() {
	var sim *etcdsim.Server
	var ctx context.Context
	BeforeEach(func() {
		sim = etcdsim.New()
		ctx = context.Background()
	})

	When("fresh", func() {
		It("starts at the index of a fresh etcd, with its own cluster ID", func() {
			Expect(sim.Index()).To(Equal(uint64(etcdsim.DefaultStartIndex)))
			Expect(sim.ClusterID()).To(Equal(etcdsim.DefaultClusterID))
			root := must(sim.Get(ctx, "/", nil))
			Expect(root.Action).To(Equal("get"))
			Expect(root.Index).To(Equal(uint64(etcdsim.DefaultStartIndex)))
			Expect(root.ClusterID).To(Equal(etcdsim.DefaultClusterID))
			Expect(root.Node).To(Equal(&client.Node{Key: "", Dir: true}))
			Expect(sim.Map("/")).To(BeEmpty())
		})

		It("takes its configuration", func() {
			sim = etcdsim.NewWithConfig(etcdsim.Config{ClusterID: "abc", StartIndex: 42})
			resp := must(sim.Get(ctx, "/", nil))
			Expect(resp.Index).To(Equal(uint64(42)))
			Expect(resp.ClusterID).To(Equal("abc"))
		})
	})

	Describe("writes", func() {
		It("creates parent directories with the key's index", func() {
			resp := must(sim.Set(ctx, "/a/b/c", "1", nil))
			Expect(resp.Action).To(Equal("set"))
			Expect(resp.Index).To(Equal(uint64(4)))
			Expect(resp.Node).To(Equal(&client.Node{Key: "/a/b/c", Value: "1", CreatedIndex: 4, ModifiedIndex: 4}))
			Expect(resp.PrevNode).To(BeNil())
			dir := must(sim.Get(ctx, "/a/b", nil)).Node
			Expect(dir.Dir).To(BeTrue())
			Expect(dir.CreatedIndex).To(Equal(uint64(4)))
		})

		It("cleans keys as etcd does", func() {
			Expect(must(sim.Set(ctx, "a//b/../c/", "1", nil)).Node.Key).To(Equal("/a/c"))
			Expect(sim.Map("/")).To(Equal(map[string]string{"/a/c": "1"}))
		})

		It("reports the previous node of a set", func() {
			must(sim.Set(ctx, "/k", "1", nil))
			resp := must(sim.Set(ctx, "/k", "2", nil))
			Expect(resp.PrevNode).To(Equal(&client.Node{Key: "/k", Value: "1", CreatedIndex: 4, ModifiedIndex: 4}))
			Expect(resp.Node.CreatedIndex).To(Equal(uint64(5)), "a set replaces the node")
		})

		It("compares and swaps on PrevValue and PrevIndex", func() {
			must(sim.Set(ctx, "/k", "1", nil))
			resp := must(sim.Set(ctx, "/k", "2", &client.SetOptions{PrevValue: "1"}))
			Expect(resp.Action).To(Equal("compareAndSwap"))
			Expect(resp.Node).To(Equal(&client.Node{Key: "/k", Value: "2", CreatedIndex: 4, ModifiedIndex: 5}))
			Expect(resp.PrevNode.Value).To(Equal("1"))

			_, err := sim.Set(ctx, "/k", "3", &client.SetOptions{PrevValue: "1"})
			Expect(err).To(Equal(client.Error{Code: 101, Message: "Compare failed", Cause: "[1 != 2]", Index: 5}))
			_, err = sim.Set(ctx, "/k", "3", &client.SetOptions{PrevIndex: 4})
			Expect(err).To(Equal(client.Error{Code: 101, Message: "Compare failed", Cause: "[4 != 5]", Index: 5}))
			Expect(must(sim.Set(ctx, "/k", "3", &client.SetOptions{PrevIndex: 5})).Action).To(Equal("compareAndSwap"))
		})

		It("creates only what does not exist", func() {
			Expect(must(sim.Create(ctx, "/k", "1")).Action).To(Equal("create"))
			_, err := sim.Create(ctx, "/k", "2")
			Expect(err).To(Equal(client.Error{Code: 105, Message: "Key already exists", Cause: "/k", Index: 4}))
		})

		It("updates only what exists", func() {
			_, err := sim.Update(ctx, "/k", "1")
			Expect(err).To(Equal(client.Error{Code: 100, Message: "Key not found", Cause: "/k", Index: 3}))
			must(sim.Set(ctx, "/k", "1", nil))
			resp := must(sim.Update(ctx, "/k", "2"))
			Expect(resp.Action).To(Equal("update"))
			Expect(resp.PrevNode.Value).To(Equal("1"))
		})

		It("makes directories and refuses to overwrite them", func() {
			resp := must(sim.Set(ctx, "/d", "", &client.SetOptions{Dir: true}))
			Expect(resp.Node).To(Equal(&client.Node{Key: "/d", Dir: true, CreatedIndex: 4, ModifiedIndex: 4}))
			_, err := sim.Set(ctx, "/d", "v", nil)
			Expect(err).To(Equal(client.Error{Code: 102, Message: "Not a file", Cause: "/d", Index: 4}))
			must(sim.Set(ctx, "/f", "v", nil))
			_, err = sim.Set(ctx, "/f/below", "v", nil)
			Expect(err).To(Equal(client.Error{Code: 104, Message: "Not a directory", Cause: "/f", Index: 5}))
		})

		It("keeps the root read-only", func() {
			_, err := sim.Set(ctx, "/", "v", nil)
			Expect(err).To(Equal(client.Error{Code: 107, Message: "Root is read only", Cause: "/", Index: 3}))
			_, err = sim.Delete(ctx, "/", &client.DeleteOptions{Recursive: true})
			Expect(err).To(Equal(client.Error{Code: 107, Message: "Root is read only", Cause: "/", Index: 3}))
		})

		It("names in-order keys by their index", func() {
			resp := must(sim.CreateInOrder(ctx, "/q", "first", nil))
			Expect(resp.Action).To(Equal("create"))
			Expect(resp.Node.Key).To(Equal("/q/00000000000000000004"))
		})

		It("leaves out the nodes when asked to", func() {
			resp := must(sim.Set(ctx, "/k", "1", &client.SetOptions{NoValueOnSuccess: true}))
			Expect(resp.Node).To(BeNil())
			Expect(resp.Index).To(Equal(uint64(4)))
		})

		It("hands out copies", func() {
			resp := must(sim.Set(ctx, "/k", "1", nil))
			resp.Node.Value = "changed"
			Expect(must(sim.Get(ctx, "/k", nil)).Node.Value).To(Equal("1"))
		})
	})

	Describe("deletes", func() {
		BeforeEach(func() {
			sim.Load(map[string]string{"/d/a": "1", "/d/e/f": "2", "/k": "v"})
		})

		It("delete a key", func() {
			resp := must(sim.Delete(ctx, "/k", nil))
			Expect(resp.Action).To(Equal("delete"))
			Expect(resp.Node).To(Equal(&client.Node{Key: "/k", CreatedIndex: 6, ModifiedIndex: 7}))
			Expect(resp.PrevNode).To(Equal(&client.Node{Key: "/k", Value: "v", CreatedIndex: 6, ModifiedIndex: 6}))
		})

		It("delete a directory only when told, and a full one only recursively", func() {
			_, err := sim.Delete(ctx, "/d", nil)
			Expect(err).To(Equal(client.Error{Code: 102, Message: "Not a file", Cause: "/d", Index: 6}))
			_, err = sim.Delete(ctx, "/d", &client.DeleteOptions{Dir: true})
			Expect(err).To(Equal(client.Error{Code: 108, Message: "Directory not empty", Cause: "/d", Index: 6}))
			resp := must(sim.Delete(ctx, "/d", &client.DeleteOptions{Recursive: true}))
			Expect(resp.Node).To(Equal(&client.Node{Key: "/d", Dir: true, CreatedIndex: 4, ModifiedIndex: 7}))
			Expect(resp.PrevNode).To(Equal(&client.Node{Key: "/d", Dir: true, CreatedIndex: 4, ModifiedIndex: 4}))
			Expect(sim.Map("/")).To(Equal(map[string]string{"/k": "v"}))
		})

		It("compare and delete on PrevValue and PrevIndex", func() {
			_, err := sim.Delete(ctx, "/k", &client.DeleteOptions{PrevValue: "x"})
			Expect(err).To(Equal(client.Error{Code: 101, Message: "Compare failed", Cause: "[x != v]", Index: 6}))
			resp := must(sim.Delete(ctx, "/k", &client.DeleteOptions{PrevIndex: 6}))
			Expect(resp.Action).To(Equal("compareAndDelete"))
			Expect(resp.Index).To(Equal(uint64(7)))
		})

		It("fail for a missing key, naming the first missing element", func() {
			_, err := sim.Delete(ctx, "/x/y", nil)
			Expect(err).To(Equal(client.Error{Code: 100, Message: "Key not found", Cause: "/x", Index: 6}))
		})
	})

	Describe("reads", func() {
		BeforeEach(func() {
			sim.Load(map[string]string{"/d/b": "2", "/d/a": "1", "/d/sub/c": "3", "/d/_hidden": "h"})
		})

		It("return a key with the store's index", func() {
			must(sim.Set(ctx, "/other", "x", nil))
			resp := must(sim.Get(ctx, "/d/a", nil))
			Expect(resp.Node).To(Equal(&client.Node{Key: "/d/a", Value: "1", CreatedIndex: 5, ModifiedIndex: 5}))
			Expect(resp.Index).To(Equal(uint64(8)))
			Expect(resp.ClusterID).To(Equal(etcdsim.DefaultClusterID))
		})

		It("list a directory's children, without theirs unless recursive", func() {
			resp := must(sim.Get(ctx, "/d", &client.GetOptions{Sort: true}))
			Expect(keys(resp.Node.Nodes)).To(Equal([]string{"/d/a", "/d/b", "/d/sub"}))
			Expect(resp.Node.Nodes[2].Dir).To(BeTrue())
			Expect(resp.Node.Nodes[2].Nodes).To(BeNil())

			resp = must(sim.Get(ctx, "/d", &client.GetOptions{Sort: true, Recursive: true}))
			Expect(keys(resp.Node.Nodes[2].Nodes)).To(Equal([]string{"/d/sub/c"}))
		})

		It("list in an order of the seed's unless sorted", func() {
			sim.Load(map[string]string{"/d/e": "", "/d/f": "", "/d/g": "", "/d/h": ""})
			listing := func(s *etcdsim.Server) []string {
				return keys(must(s.Get(ctx, "/d", nil)).Node.Nodes)
			}
			other := etcdsim.New()
			other.Load(sim.Map("/"))
			mine, theirs := listing(sim), listing(other)
			Expect(mine).To(ConsistOf("/d/a", "/d/b", "/d/e", "/d/f", "/d/g", "/d/h", "/d/sub"))
			Expect(mine).To(Equal(theirs), "same seed, same calls, same order")
		})

		It("fail for a missing key with error 100 and the current index", func() {
			_, err := sim.Get(ctx, "/d/nope/deeper", nil)
			Expect(err).To(Equal(client.Error{Code: 100, Message: "Key not found", Cause: "/d/nope", Index: 7}))
			Expect(client.IsKeyNotFound(err)).To(BeTrue())
			var etcdErr client.Error
			Expect(errors.As(err, &etcdErr)).To(BeTrue(), "a client.Error value, as client/v2 returns")
		})

		It("hide hidden keys from listings but not from direct reads", func() {
			Expect(keys(must(sim.Get(ctx, "/d", &client.GetOptions{Recursive: true, Sort: true})).Node.Nodes)).
				NotTo(ContainElement("/d/_hidden"))
			Expect(must(sim.Get(ctx, "/d/_hidden", nil)).Node.Value).To(Equal("h"))
			Expect(sim.Map("/d")).To(Equal(map[string]string{"/d/a": "1", "/d/b": "2", "/d/sub/c": "3"}))
		})

		It("list an empty directory with nil nodes, as client/v2 decodes it", func() {
			must(sim.Set(ctx, "/empty", "", &client.SetOptions{Dir: true}))
			Expect(must(sim.Get(ctx, "/empty", &client.GetOptions{Recursive: true})).Node.Nodes).To(BeNil())
		})
	})

	Describe("TTLs", func() {
		It("count down on the fake clock", func() {
			resp := must(sim.Set(ctx, "/k", "v", &client.SetOptions{TTL: 10 * time.Second}))
			Expect(resp.Node.TTL).To(Equal(int64(10)))
			Expect(*resp.Node.Expiration).To(Equal(etcdsim.DefaultStart.Add(10 * time.Second)))
			sim.Advance(2500 * time.Millisecond)
			Expect(must(sim.Get(ctx, "/k", nil)).Node.TTL).To(Equal(int64(8)), "rounded up")
			Expect(sim.Now()).To(Equal(etcdsim.DefaultStart.Add(2500 * time.Millisecond)))
		})

		It("expire keys and directories with an event and an index each", func() {
			must(sim.Set(ctx, "/k", "v", &client.SetOptions{TTL: time.Second}))
			must(sim.Set(ctx, "/d", "", &client.SetOptions{Dir: true, TTL: 2 * time.Second}))
			must(sim.Set(ctx, "/d/child", "c", nil))
			w := sim.Watcher("/", &client.WatcherOptions{AfterIndex: sim.Index(), Recursive: true})

			sim.Advance(time.Second)
			Expect(sim.Map("/")).To(Equal(map[string]string{"/d/child": "c"}))
			sim.Advance(time.Hour)
			Expect(sim.Map("/")).To(BeEmpty())
			Expect(sim.Index()).To(Equal(uint64(8)))

			first := must(w.Next(ctx))
			Expect(first.Action).To(Equal("expire"))
			Expect(first.Node).To(Equal(&client.Node{Key: "/k", CreatedIndex: 4, ModifiedIndex: 7}))
			Expect(first.PrevNode.Value).To(Equal("v"))
			Expect(first.PrevNode.TTL).To(BeZero(), "expired on time, however far the clock jumped")
			second := must(w.Next(ctx))
			Expect(second.Action).To(Equal("expire"))
			Expect(second.Node).To(Equal(&client.Node{Key: "/d", Dir: true, CreatedIndex: 5, ModifiedIndex: 8}))
		})

		It("go with an update or a compare-and-swap that sets none", func() {
			must(sim.Set(ctx, "/a", "v", &client.SetOptions{TTL: time.Second}))
			must(sim.Set(ctx, "/b", "v", &client.SetOptions{TTL: time.Second}))
			Expect(must(sim.Update(ctx, "/a", "w")).Node.TTL).To(BeZero())
			Expect(must(sim.Set(ctx, "/b", "w", &client.SetOptions{PrevValue: "v"})).Node.Expiration).To(BeNil())
			sim.Advance(time.Minute)
			Expect(sim.Map("/")).To(HaveLen(2))
		})

		It("refresh without telling watchers, taking an index", func() {
			must(sim.Set(ctx, "/k", "v", &client.SetOptions{TTL: time.Second}))
			w := sim.Watcher("/k", &client.WatcherOptions{AfterIndex: sim.Index()})
			resp := must(sim.Set(ctx, "/k", "", &client.SetOptions{Refresh: true, TTL: time.Minute}))
			Expect(resp.Node.Value).To(Equal("v"))
			Expect(resp.Index).To(Equal(uint64(5)))
			sim.Advance(30 * time.Second)
			must(sim.Set(ctx, "/k", "w", nil))
			Expect(must(w.Next(ctx)).Node.Value).To(Equal("w"), "the refresh is not an event")
		})
	})
})
