// confd v0.16.0 predates Go modules: scripts/confd.sh builds its module source
// with this go.mod and go.sum. Every requirement is the exact revision pinned in
// confd v0.16.0's Gopkg.lock (a tag where the lock names one, else the
// pseudo-version of the locked commit), so nothing newer is pulled in.
module github.com/kelseyhightower/confd

go 1.16

require (
	github.com/BurntSushi/toml v0.3.0
	github.com/aws/aws-sdk-go v1.13.41
	github.com/coreos/etcd v3.3.4+incompatible
	github.com/coreos/go-semver v0.2.0
	github.com/fsnotify/fsnotify v1.4.7
	github.com/garyburd/redigo v1.6.0
	github.com/go-ini/ini v1.36.0
	github.com/gogo/protobuf v1.0.0
	github.com/golang/protobuf v1.1.0
	github.com/golang/snappy v0.0.0-20170215233205-553a64147049
	github.com/hashicorp/consul v1.0.7
	github.com/hashicorp/errwrap v0.0.0-20141028054710-7554cd9344ce
	github.com/hashicorp/go-cleanhttp v0.0.0-20171218145408-d5fe4b57a186
	github.com/hashicorp/go-multierror v0.0.0-20171204182908-b7773ae21874
	github.com/hashicorp/go-rootcerts v0.0.0-20160503143440-6bb64b370b90
	github.com/hashicorp/go-sockaddr v0.0.0-20180320115054-6d291a969b86
	github.com/hashicorp/hcl v0.0.0-20180404174102-ef8a98b0bbce
	github.com/hashicorp/serf v0.8.1
	github.com/hashicorp/vault v0.10.1
	github.com/jmespath/go-jmespath v0.0.0-20160202185014-0b12d6b521d8
	github.com/kelseyhightower/memkv v0.1.1
	github.com/mitchellh/go-homedir v0.0.0-20161203194507-b8bc1bf76747
	github.com/mitchellh/mapstructure v0.0.0-20180220230111-00c29f56e238
	github.com/ryanuber/go-glob v0.0.0-20160226084822-572520ed46db
	github.com/samuel/go-zookeeper v0.0.0-20180130194729-c4fab1ac1bec
	github.com/sethgrid/pester v0.0.0-20180430140037-03e26c9abbbf
	github.com/sirupsen/logrus v1.0.5
	github.com/ugorji/go v1.1.1
	github.com/xordataexchange/crypt v0.0.0-20170626215501-b2862e3d0a77
	golang.org/x/crypto v0.0.0-20180503215945-1f94bef427e3
	golang.org/x/net v0.0.0-20180502164142-640f4622ab69
	golang.org/x/sys v0.0.0-20180504064212-6f686a352de6
	golang.org/x/text v0.3.0
	google.golang.org/genproto v0.0.0-20180427144745-86e600f69ee4
	google.golang.org/grpc v1.11.3
	gopkg.in/yaml.v2 v2.2.1
)
