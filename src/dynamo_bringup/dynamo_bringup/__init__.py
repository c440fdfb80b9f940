"""Launch files, configs and the end-to-end demo of dynamo-ros for the xArm kitchen and the Allegro hand."""
