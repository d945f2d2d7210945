package etcdv3

import (
	"reflect"
	"testing"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcdsync/etcdsync/messages"
)

// TestChangesMarkAnIndexThatIsNotWhole: a range delete at revision 7 is two
// events of one response; the first must say More, so that the merger hands
// its host (a relay announcing positions) no batch that ends between them.
func TestChangesMarkAnIndexThatIsNotWhole(t *testing.T) {
	ev := func(typ mvccpb.Event_EventType, key string, rev int64) *clientv3.Event {
		return &clientv3.Event{Type: typ, Kv: &mvccpb.KeyValue{Key: []byte(key), Value: []byte("v"), ModRevision: rev}}
	}
	w := &watch{}
	got := w.changes(&clientv3.WatchResponse{Events: []*clientv3.Event{
		ev(mvccpb.PUT, "/p/a", 6),
		ev(mvccpb.DELETE, "/p/b", 7),
		ev(mvccpb.DELETE, "/p/c", 7),
		ev(mvccpb.PUT, "/p/d", 8),
	}}).Events
	want := []messages.MergeInput{
		messages.WatcherUpdate{KV: messages.KV{Key: "/p/a", Value: "v", ModifiedIndex: 6}},
		messages.WatcherDeletion{Key: "/p/b", ModifiedIndex: 7, More: true},
		messages.WatcherDeletion{Key: "/p/c", ModifiedIndex: 7},
		messages.WatcherUpdate{KV: messages.KV{Key: "/p/d", Value: "v", ModifiedIndex: 8}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("changes:\n got %v\nwant %v", got, want)
	}
}
