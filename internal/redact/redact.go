package redact

import (
	"net/url"
	"strings"
)

// unparsable stands for a URL that does not parse but may hold a password.
const unparsable = "(unparsable URL with userinfo)"

// URL returns s with the password of its userinfo, if any, replaced by
// "xxxxx" (url.URL.Redacted). A string that does not parse as a URL is
// returned as is unless it holds an '@', which may precede a password.
func URL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		if strings.Contains(s, "@") {
			return unparsable
		}
		return s
	}
	return u.Redacted()
}

// URLs returns URL of each of urls, in a new slice.
func URLs(urls []string) []string {
	out := make([]string, len(urls))
	for i, s := range urls {
		out[i] = URL(s)
	}
	return out
}
