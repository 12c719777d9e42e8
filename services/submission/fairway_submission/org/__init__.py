"""Organisation: node pools, departments, projects and the cluster's nodes."""
