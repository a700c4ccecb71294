"""Contract check, named as such: Chef cannot be installed here (Debian 12 has no chef or
cinc), so the node JSON a chef run stages on the instance is rendered with Debian's own
`ruby` and its ERB, through a node object that reads attributes by symbol or string as
Chef's does, with templates written the way OpsWorks Chef 11 cookbooks wrote theirs
(`node[:opsworks][:layers][...][:instances]`, `node[:deploy][app][...]`). What they
render is compared line for line: a key we do not stage, or stage in another shape,
changes the output or fails the render.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError

from opsflow import settings
from opsflow.attributes import stack_configuration
from opsflow.messages import InstanceView, LaunchResult, RunContext
from opsflow.secrets import encrypt
from opsflow.spec import ConfigurationManager, Provider, StackSpec
from opsflow.status import InstanceStatus
from tests.activities.conftest import STACK, Runner, remote_file, run, runner_for, write_tree

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("ruby") is None, reason="no ruby here (apt package ruby)"),
]

CERT = "-----BEGIN CERTIFICATE-----\nMIIBcert\n-----END CERTIFICATE-----\n"
SSL_KEY = "-----BEGIN PRIVATE KEY-----\nMIIEkey\n-----END PRIVATE KEY-----\n"

# What OpsWorks' haproxy and apache cookbooks did with the stack configuration, written
# anew: backends from a layer's (online) instances, a virtual host from deploy.APP.
BACKENDS = """\
<% opsworks = node[:opsworks] -%>
# <%= opsworks[:stack][:name] %> <%= opsworks[:activity] %> on <%= opsworks[:instance][:hostname] %>
backend <%= node[:opsworks][:layers][:web][:name] %>
<% node[:opsworks][:layers][:web][:instances].sort.each do |name, instance| -%>
  server <%= name %> <%= instance[:private_ip] %>:80 check # <%= instance[:status] %>
<% end -%>
"""
VHOST = """\
<% app = node[:deploy][:shop] -%>
<VirtualHost *:<%= app[:ssl_support] ? 443 : 80 %>>
  ServerName <%= app[:domains].first %>
<% app[:domains][1..].each do |alias_name| -%>
  ServerAlias <%= alias_name %>
<% end -%>
  DocumentRoot <%= app[:deploy_to] %>/current/<%= app[:document_root] %>
<% app[:environment_variables].sort.each do |key, value| -%>
  SetEnv <%= key %> "<%= value %>"
<% end -%>
<% if app[:ssl_support] -%>
  SSLCertificateKeyFile <%= app[:ssl_certificate_key].lines.first.strip %>
<% end -%>
<% scm = app[:scm] -%>
  # <%= app[:application] %> (<%= app[:application_type] %>) from <%= scm[:scm_type] -%>
 <%= scm[:repository] %> @ <%= scm[:revision] %>
</VirtualHost>
"""
RENDER = """
require 'erb'
require 'json'
class Node < Hash
  def self.from(value)
    case value
    when Hash then value.each_with_object(Node.new) { |(k, v), node| node.store(k.to_s, from(v)) }
    when Array then value.map { |v| from(v) }
    else value
    end
  end
  def [](key) = fetch(key.to_s) { raise KeyError, "no attribute #{key}" }
end
node = Node.from(JSON.parse(File.read(ARGV[0])))
define_method(:node) { node }
print ERB.new(File.read(ARGV[1]), trim_mode: '-').result(binding)
"""


def _spec() -> StackSpec:
    key = encrypt(settings.secret_key(), SSL_KEY).model_dump(mode="json")
    return StackSpec.model_validate(
        {
            "name": STACK,
            "configuration_manager": "chef",
            "layers": [{"name": "web"}, {"name": "db"}],
            "apps": [
                {
                    "name": "shop",
                    "layers": ["web"],
                    "type": "php",
                    "source": {"git": "https://git.example.com/shop.git", "revision": "v2"},
                    "domains": ["shop.example.com", "www.shop.example.com"],
                    "document_root": "public",
                    "environment": {"STAGE": "prod", "TOKEN": "abc"},
                    "ssl": {"certificate": CERT, "key": key},
                }
            ],
        }
    )


def _views() -> list[InstanceView]:
    def view(hostname: str, layers: list[str], status: InstanceStatus, ip: str) -> InstanceView:
        return InstanceView(
            hostname=hostname,
            layers=layers,
            status=status,
            provider=Provider.LOCAL,
            private_ip=ip,
            root="/",
        )

    return [
        view("web1", ["web"], InstanceStatus.ONLINE, "10.0.0.11"),
        view("web2", ["web"], InstanceStatus.STOPPED, "10.0.0.12"),
        view("web3", ["web", "db"], InstanceStatus.ONLINE, "10.0.0.13"),
    ]


async def _node_json(tmp_path: Path, request_for: Runner, instance: LaunchResult) -> Path:
    views = _views()
    context = RunContext(
        configuration=stack_configuration(_spec(), views, views[0], "configure"),
        recipes=[],
        configuration_manager=ConfigurationManager.CHEF,
        cookbooks_dir=str(write_tree(tmp_path / "cookbooks", {"web/recipes/a.rb": "\n"})),
    )
    # Without chef the run fails; with one, the empty recipe passes: staged either way.
    with contextlib.suppress(ApplicationError):
        await run(runner_for(context), request_for("t1", ["web::a"], event="configure"))
    node = remote_file(instance, f"{instance.root}/var/lib/opsflow/runs/t1/node.json")
    local = tmp_path / "node.json"
    local.write_text(node)
    return local


def _render(tmp_path: Path, node: Path, template: str) -> str:
    (tmp_path / "render.rb").write_text(RENDER)
    (tmp_path / "template.erb").write_text(template)
    done = subprocess.run(
        ["ruby", str(tmp_path / "render.rb"), str(node), str(tmp_path / "template.erb")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


async def test_contract_check_a_layer_template_lists_only_online_instances(
    tmp_path: Path, request_for: Runner, instance: LaunchResult
) -> None:
    node = await _node_json(tmp_path, request_for, instance)
    assert _render(tmp_path, node, BACKENDS) == (
        f"# {STACK} configure on web1\n"
        "backend web\n"
        "  server web1 10.0.0.11:80 check # online\n"
        "  server web3 10.0.0.13:80 check # online\n"
    )


async def test_contract_check_a_vhost_template_reads_deploy_app_with_the_key_revealed(
    tmp_path: Path, request_for: Runner, instance: LaunchResult
) -> None:
    node = await _node_json(tmp_path, request_for, instance)
    assert json.loads(node.read_text())["deploy"]["shop"]["ssl_certificate"] == CERT
    assert _render(tmp_path, node, VHOST) == (
        "<VirtualHost *:443>\n"
        "  ServerName shop.example.com\n"
        "  ServerAlias www.shop.example.com\n"
        "  DocumentRoot /srv/www/shop/current/public\n"
        '  SetEnv STAGE "prod"\n'
        '  SetEnv TOKEN "abc"\n'
        "  SSLCertificateKeyFile -----BEGIN PRIVATE KEY-----\n"
        "  # shop (php) from git https://git.example.com/shop.git @ v2\n"
        "</VirtualHost>\n"
    )
