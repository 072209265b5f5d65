// Wrapper module that builds Consul v1.14.11 (the last MPL-2.0 release whose
// submodules the Go module proxy serves). Consul's own go.mod points its
// submodules at ./api etc. with replace directives that Go ignores in a
// dependency, so they are required here at their published versions.
module meshmart/tools/consul

go 1.20

require (
	github.com/hashicorp/consul v1.14.11
	github.com/hashicorp/consul/api v1.18.1
	github.com/hashicorp/consul/sdk v0.13.0
	github.com/hashicorp/consul/proto-public v0.2.1
)

replace launchpad.net/gocheck => github.com/go-check/check v0.0.0-20140225173054-eb6ee6f84d0a

// go-discover without its cloud providers (go-discover/discover.go says why).
replace github.com/hashicorp/go-discover => ./go-discover
