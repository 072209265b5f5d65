module github.com/hashicorp/go-discover

require (
	github.com/Azure/azure-sdk-for-go v44.0.0+incompatible
	github.com/Azure/go-autorest/autorest v0.11.18
	github.com/Azure/go-autorest/autorest/azure/auth v0.5.0
	github.com/Azure/go-autorest/autorest/to v0.4.0 // indirect
	github.com/Azure/go-autorest/autorest/validation v0.3.0 // indirect
	github.com/abdullin/seq v0.0.0-20160510034733-d5467c17e7af // indirect
	github.com/aws/aws-sdk-go v1.25.41
	github.com/denverdino/aliyungo v0.0.0-20170926055100-d3308649c661
	github.com/digitalocean/godo v1.7.5
	github.com/dnaeon/go-vcr v1.0.1 // indirect
	github.com/google/go-querystring v0.0.0-20170111101155-53e6ce116135 // indirect
	github.com/googleapis/gnostic v0.2.0 // indirect
	github.com/gophercloud/gophercloud v0.1.0
	github.com/hashicorp/go-multierror v1.0.0
	github.com/hashicorp/mdns v1.0.1
	github.com/hashicorp/vic v1.5.1-0.20190403131502-bbfe86ec9443
	github.com/imdario/mergo v0.3.6 // indirect
	github.com/jarcoal/httpmock v0.0.0-20180424175123-9c70cfe4a1da // indirect
	github.com/joyent/triton-go v0.0.0-20180628001255-830d2b111e62
	github.com/linode/linodego v0.7.1
	github.com/mitchellh/go-homedir v1.1.0
	github.com/nicolai86/scaleway-sdk v1.10.2-0.20180628010248-798f60e20bb2
	github.com/packethost/packngo v0.1.1-0.20180711074735-b9cb5096f54c
	github.com/pkg/errors v0.8.0 // indirect
	github.com/renier/xmlrpc v0.0.0-20170708154548-ce4a1a486c03 // indirect
	github.com/sean-/seed v0.0.0-20170313163322-e2103e2c3529 // indirect
	github.com/sirupsen/logrus v1.0.6 // indirect
	github.com/softlayer/softlayer-go v0.0.0-20180806151055-260589d94c7d
	github.com/stretchr/testify v1.4.0
	github.com/tencentcloud/tencentcloud-sdk-go v1.0.162
	github.com/vmware/govmomi v0.18.0
	golang.org/x/oauth2 v0.0.0-20190604053449-0f29369cfe45
	google.golang.org/api v0.4.0
	gopkg.in/airbrake/gobrake.v2 v2.0.9 // indirect
	gopkg.in/gemnasium/logrus-airbrake-hook.v2 v2.1.2 // indirect
	gopkg.in/resty.v1 v1.12.0 // indirect
	k8s.io/api v0.18.2
	k8s.io/apimachinery v0.18.2
	k8s.io/client-go v0.18.2
)

go 1.12
