# Runs on every online instance whenever an instance enters or leaves online: the peers
# of this layer and the database hosts, as a load balancer or an app config would list.
class web::configure {
  $root = $facts['opsflow_root']
  $layers = lookup('opsflow.layers')
  $online = $layers['web']['instances'].filter |$name, $instance| {
    $instance['status'] == 'online'
  }
  $databases = keys($layers['db']['instances'])
  file { "${root}/etc":
    ensure => directory,
  }
  file { "${root}/etc/peers.txt":
    content => "web: ${join(sort(keys($online)), ' ')}\ndb: ${join(sort($databases), ' ')}\n",
  }
}
