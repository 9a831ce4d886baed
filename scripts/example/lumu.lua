-- lumu's bundled example: mu's basic + database examples as one lumu.lua.
-- `lumu synth -c scripts/example/lumu.lua -o out` writes the CloudFormation
-- of every stack; scripts/example/mu.yml is the same project in mu.yml form.

-- Two environments: acceptance on Fargate, production on an ECS cluster of
-- EC2 instances (up to 5).
environment {
  name = "acceptance",
  provider = "ecs-fargate",
}

environment {
  name = "production",
  provider = "ecs",
  cluster = { maxSize = 5 },
}

-- One service behind the load balancer of each environment.
service {
  name = "sample-service",
  port = 80,
  healthEndpoint = "/",
  pathPatterns = { "/*" },
  environment = {
    -- the same value everywhere
    LOG_LEVEL = "info",
    -- a value per environment
    FEATURE_FLAGS = { acceptance = "beta,debug", production = "" },
    -- database outputs, through the stack's parameters (mu's ${Database*})
    SPRING_DATASOURCE_USERNAME = "${DatabaseMasterUsername}",
    SPRING_DATASOURCE_URL = "jdbc:mysql://${DatabaseEndpointAddress}:${DatabaseEndpointPort}/${DatabaseName}",
    -- injected as an ECS secret from SSM, never as plain text
    SPRING_DATASOURCE_PASSWORD = "${DatabaseMasterPassword}",
  },
}

-- mu's database example.
database {
  name = "sample",
}

-- mu's basic example pipeline.
pipeline {
  source = { repo = "cplee/aftp-mu" },
}
