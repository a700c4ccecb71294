# Runs once when the database instance boots.
directory "#{node['opsworks']['instance']['root']}/var/lib/shopdb" do
  recursive true
end
