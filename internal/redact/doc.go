// Package redact keeps secrets out of logs and error text: an endpoint URL
// given as http://user:password@host carries a password, and every log line
// or error that names the endpoint must name it without. The functions are
// pure and safe for concurrent use.
package redact
