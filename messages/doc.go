// Package messages holds every value that crosses an actor boundary in
// etcdsync, and the public types a host sees: Update, UpdateType, SyncStatus
// and the Callbacks it implements.
//
// The types are plain Go structs (no protobuf: the actors share one process)
// that carry data and print themselves. They hold no logic: a message is
// never mutated after it is sent, and a slice in a message belongs to the
// receiver once sent.
package messages
