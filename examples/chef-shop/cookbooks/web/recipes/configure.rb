# Runs on every online instance whenever an instance enters or leaves online.
root = node['opsworks']['instance']['root']
web = node['opsworks']['layers']['web']['instances'].select { |_, i| i['status'] == 'online' }
directory "#{root}/etc"
file "#{root}/etc/peers.txt" do
  content "web: #{web.keys.sort.join(' ')}\ndb: #{node['opsworks']['layers']['db']['instances'].keys.sort.join(' ')}\n"
end
