# Runs once when a web instance boots.
root = node['opsworks']['instance']['root']
directory "#{root}/srv/www" do
  recursive true
end
file "#{root}/srv/www/index.html" do
  content "#{node['shop']['greeting']} from #{node['opsworks']['instance']['hostname']}\n"
end
