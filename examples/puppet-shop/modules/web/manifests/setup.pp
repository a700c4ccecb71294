# Runs once when a web instance boots: a page written from the stack configuration.
class web::setup {
  $root = $facts['opsflow_root']
  file { ["${root}/srv", "${root}/srv/www"]:
    ensure => directory,
  }
  file { "${root}/srv/www/index.html":
    content => "${lookup('shop.greeting')} from ${lookup('opsflow.instance.hostname')}\n",
  }
}
