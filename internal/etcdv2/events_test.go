package etcdv2_test

import (
	"context"
	"errors"
	"io"
	"net"
	"path"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"go.etcd.io/etcd/client/v2"

	"github.com/etcdsync/etcdsync/internal/etcdv2"
	"github.com/etcdsync/etcdsync/internal/source"
	m "github.com/etcdsync/etcdsync/messages"
)

var _ = Describe("Watch error classification", func() {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connect: connection refused")}
	DescribeTable("ClassifyWatchError",
		func(err error, want source.Verdict) {
			Expect(etcdv2.ClassifyWatchError(err)).To(Equal(want))
		},
		Entry("401: the index left the event window", client.Error{Code: client.ErrorCodeEventIndexCleared}, source.LostSync),
		Entry("400: etcd dropped the watcher", client.Error{Code: client.ErrorCodeWatcherCleared}, source.LostSync),
		Entry("401 inside a ClusterError", &client.ClusterError{Errors: []error{client.Error{Code: 401}}}, source.LostSync),
		Entry("a dead member", &client.ClusterError{Errors: []error{refused}}, source.Retry),
		Entry("a cut connection", &client.ClusterError{Errors: []error{io.ErrUnexpectedEOF}}, source.Retry),
		Entry("a leader election", client.Error{Code: client.ErrorCodeLeaderElect}, source.Retry),
		Entry("anything else", errors.New("surprise"), source.Retry),
		Entry("cancellation", context.Canceled, source.Stopped),
	)

	DescribeTable("EventFromResponse",
		func(action string, dir bool, want any, wantErr bool) {
			got, err := etcdv2.EventFromResponse("/p", &client.Response{Action: action,
				Node: &client.Node{Key: "/p/k", Value: "v", Dir: dir, ModifiedIndex: 7}})
			if wantErr {
				Expect(err).To(MatchError(ContainSubstring(action)))
				return
			}
			Expect(err).NotTo(HaveOccurred())
			if want == nil {
				Expect(got).To(BeNil())
			} else {
				Expect(got).To(Equal(want))
			}
		},
		Entry("set", "set", false, m.WatcherUpdate{KV: m.KV{Key: "/p/k", Value: "v", ModifiedIndex: 7}}, false),
		Entry("create", "create", false, m.WatcherUpdate{KV: m.KV{Key: "/p/k", Value: "v", ModifiedIndex: 7}}, false),
		Entry("update", "update", false, m.WatcherUpdate{KV: m.KV{Key: "/p/k", Value: "v", ModifiedIndex: 7}}, false),
		Entry("compareAndSwap", "compareAndSwap", false, m.WatcherUpdate{KV: m.KV{Key: "/p/k", Value: "v", ModifiedIndex: 7}}, false),
		Entry("delete", "delete", false, m.WatcherDeletion{Key: "/p/k", ModifiedIndex: 7}, false),
		Entry("directory delete", "delete", true, m.WatcherDeletion{Key: "/p/k", ModifiedIndex: 7}, false),
		Entry("compareAndDelete", "compareAndDelete", false, m.WatcherDeletion{Key: "/p/k", ModifiedIndex: 7}, false),
		Entry("expire", "expire", false, m.WatcherDeletion{Key: "/p/k", ModifiedIndex: 7}, false),
		Entry("a directory created is ignored", "set", true, nil, false),
		Entry("an unknown action is an error, not a panic", "teleport", false, nil, true),
	)

	It("takes a directory set over a file for the file's deletion", func() {
		dir := &client.Node{Key: "/p/k", Dir: true, ModifiedIndex: 9, CreatedIndex: 9}
		file := &client.Node{Key: "/p/k", Value: "v", ModifiedIndex: 7, CreatedIndex: 7}
		got, err := etcdv2.EventFromResponse("/p", &client.Response{Action: "set", Node: dir, PrevNode: file})
		Expect(err).NotTo(HaveOccurred())
		Expect(got).To(Equal(m.WatcherDeletion{Key: "/p/k", ModifiedIndex: 9}))

		By("but not a directory set over a directory, nor a directory created")
		got, err = etcdv2.EventFromResponse("/p", &client.Response{Action: "create", Node: dir})
		Expect(err).NotTo(HaveOccurred())
		Expect(got).To(BeNil())
	})

	It("ignores hidden keys, as etcd's live notifications do", func() {
		for _, action := range []string{"set", "delete", "expire"} {
			got, err := etcdv2.EventFromResponse("/p", &client.Response{Action: action,
				Node: &client.Node{Key: "/p/d/_h", Value: "v", ModifiedIndex: 7}})
			Expect(err).NotTo(HaveOccurred())
			Expect(got).To(BeNil(), action)
		}
	})

	DescribeTable("Hidden, relative to the prefix as v2store's isHidden",
		func(prefix, key string, want bool) {
			Expect(etcdv2.Hidden(prefix, key)).To(Equal(want))
		},
		Entry("a hidden leaf", "/calico/v1", "/calico/v1/_x", true),
		Entry("below a hidden directory", "/calico/v1", "/calico/v1/a/_d/k", true),
		Entry("an underscore inside a name", "/calico/v1", "/calico/v1/a_b/c_", false),
		Entry("the prefix itself hidden: only what is below it counts", "/calico/_v1", "/calico/_v1/k", false),
		Entry("the prefix itself", "/calico/v1", "/calico/v1", false),
		Entry("an ancestor of the prefix (a directory delete)", "/calico/v1", "/calico", false),
		Entry("a hidden ancestor's delete", "/calico/v1", "/_calico", false),
	)

	It("Hidden gives v2store's answer for every key of a small alphabet, odd paths included", func() {
		// The rule as v2store states it, without Hidden's shortcut.
		isHidden := func(prefix, key string) bool {
			return len(key) > len(prefix) && strings.Contains(path.Clean("/"+key[len(prefix):]), "/_")
		}
		var keys []string
		var grow func(k string)
		grow = func(k string) {
			keys = append(keys, k)
			if len(k) < 7 {
				for _, c := range "/_.a" {
					grow(k + string(c))
				}
			}
		}
		grow("")
		Expect(keys).To(HaveLen(21845))
		for _, k := range keys {
			key := "/p" + k
			Expect(etcdv2.Hidden("/p", key)).To(Equal(isHidden("/p", key)), key)
		}
	})

	It("makes an event it cannot read a lost sync, through the Source's watch", func(ctx SpecContext) {
		src := etcdv2.NewKeysSource(oneEvent{&client.Response{Action: "teleport",
			Node: &client.Node{Key: "/p/k", ModifiedIndex: 3}}}, "/p")
		_, err := src.Watch(2).Next(ctx)
		Expect(err).To(MatchError(ContainSubstring("teleport")))
		Expect(src.Classify(err)).To(Equal(source.LostSync))
	})
})

// oneEvent is a KeysAPI whose watchers return one response.
type oneEvent struct{ resp *client.Response }

func (k oneEvent) Get(context.Context, string, *client.GetOptions) (*client.Response, error) {
	return nil, errors.New("not here")
}

func (k oneEvent) Watcher(string, *client.WatcherOptions) client.Watcher { return k }

func (k oneEvent) Next(context.Context) (*client.Response, error) { return k.resp, nil }
